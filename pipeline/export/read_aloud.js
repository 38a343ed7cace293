/* Taleweaver's "Read to me": the browser's own speech synthesis reads a book page after page,
   in the book's language where the browser has a voice for it; nothing leaves the browser.
   Used by the HTML book and by the app's Gallery; kept once on `window`, so a second load
   (every click in the app) reuses it. */
window.taleweaverReader = window.taleweaverReader || (() => {
  let session = 0;  // each start and each stop begins a new session: an older loop ends
  let active = false;
  const synth = () => window.speechSynthesis;
  const norm = (tag) => (tag || "").toLowerCase().replace(/_/g, "-");

  function available() {
    return "speechSynthesis" in window && "SpeechSynthesisUtterance" in window;
  }

  function voices() {
    const now = synth().getVoices() || [];
    if (now.length) return Promise.resolve(now);
    return new Promise((resolve) => {  // Chrome fills the list a moment after the first ask
      const done = () => resolve(synth().getVoices() || []);
      if (synth().addEventListener) synth().addEventListener("voiceschanged", done, {once: true});
      setTimeout(done, 1000);
    });
  }

  async function voiceFor(lang) {
    const want = norm(lang);
    if (!want) return null;
    const all = await voices();
    return all.find((v) => norm(v.lang) === want)
      || all.find((v) => norm(v.lang).split("-")[0] === want.split("-")[0]) || null;
  }

  function say(text, lang, voice) {
    return new Promise((resolve) => {
      const utterance = new SpeechSynthesisUtterance(text);
      if (lang) utterance.lang = lang;
      if (voice) utterance.voice = voice;
      let started = false;
      utterance.onstart = () => { started = true; };
      utterance.onend = () => resolve(true);
      utterance.onerror = () => resolve(false);
      synth().speak(utterance);
      setTimeout(() => { if (!started) resolve(false); }, 8000);  // a browser with no voice
    });
  }

  function stop() {
    session += 1;
    active = false;
    if (available()) synth().cancel();
  }

  /* Read `first` and the pages after it: `next(page)` resolves to the following page or
     null. Each page says what to read in data-read and has the class tw-reading meanwhile. */
  async function read(first, next, lang, onDone) {
    stop();
    const mine = session;
    active = true;
    const voice = await voiceFor(lang);
    let page = first;
    while (page && mine === session) {
      page.classList.add("tw-reading");
      if (page.scrollIntoView) page.scrollIntoView({block: "nearest", behavior: "smooth"});
      if (page.dataset.read) await say(page.dataset.read, lang, voice);
      page.classList.remove("tw-reading");
      if (mine !== session) return;
      page = await next(page);
    }
    if (mine === session) {
      active = false;
      if (onDone) onDone();
    }
  }

  return {available, read, stop, active: () => active};
})();
