"""Small image measurements for photo intake: sharpness, exposure, perceptual hash, saliency.

Plain numpy on small grayscale arrays (uint8, 0-255); each takes a few milliseconds. The
thresholds that turn these numbers into verdicts live in photos.py.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

_BLUR_WINDOW = 11  # the re-blur of Crete-Roffet's metric


def blur_score(gray: np.ndarray) -> float:
    """How blurred an image looks, from 0 (sharp) to 1 (featureless).

    The no-reference metric of Crete-Roffet et al. (2007, "The blur effect"): blur the image
    again and measure how much of the variation between neighbouring pixels that takes away.
    A sharp image loses much of it, an already blurred one little. It depends little on the
    content, unlike the variance of the Laplacian.
    """
    image = np.asarray(gray, dtype=np.float64)
    scores = [0.0]
    for axis in (0, 1):
        reblurred = _box_filter(image, _BLUR_WINDOW, axis)
        variation = np.abs(np.diff(image, axis=axis))[2:-2, 2:-2]
        kept = np.abs(np.diff(reblurred, axis=axis))[2:-2, 2:-2]
        total = variation.sum()
        if total == 0:
            return 1.0
        lost = np.maximum(0.0, variation - kept).sum()
        scores.append(float((total - lost) / total))
    return max(scores)


def _box_filter(image: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Mean over `size` neighbours along one axis, mirroring the edges."""
    moved = np.moveaxis(image, axis, 0)
    half = size // 2
    padded = np.pad(moved, [(half, half)] + [(0, 0)] * (moved.ndim - 1), mode="symmetric")
    sums = np.cumsum(padded, axis=0)
    sums = np.concatenate([np.zeros_like(sums[:1]), sums], axis=0)
    means = (sums[size:] - sums[:-size]) / size
    return np.moveaxis(means, 0, axis)


def exposure(gray: np.ndarray) -> tuple[float, float]:
    """The 5th and 95th percentiles of brightness (0-255): how dark the lights are and how
    light the darks are."""
    low, high = np.percentile(np.asarray(gray, dtype=np.float64), [5, 95])
    return float(low), float(high)


def dhash(image: Image.Image) -> int:
    """A 64-bit difference hash: brightness gradients of a 9x8 thumbnail. Re-saving, resizing,
    recompressing or re-lighting a photo changes it by a few bits at most."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def hamming(a: int, b: int) -> int:
    """How many bits of two hashes differ."""
    return bin(a ^ b).count("1")


def salient_square(gray: np.ndarray) -> tuple[int, int]:
    """Where the square of the image's short side best holds the part that stands out:
    the (x, y) offset of that square, in the array's pixels.

    Saliency is the spectral residual of Hou and Zhang (2007): what is left of the log
    spectrum once its smooth trend is removed marks the unexpected parts of the image.
    """
    image = np.asarray(gray, dtype=np.float64)
    height, width = image.shape
    side = min(height, width)
    if height == width:
        return 0, 0
    spectrum = np.fft.fft2(image)
    log_amplitude = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amplitude - _box_filter(_box_filter(log_amplitude, 3, 0), 3, 1)
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    for _ in range(3):
        saliency = _box_filter(_box_filter(saliency, 5, 0), 5, 1)
    profile = saliency.sum(axis=0 if width > height else 1)
    window = np.convolve(profile, np.ones(side), mode="valid")
    near_best = np.flatnonzero(window >= window.max() * 0.99)  # ties go to the most central
    best = int(near_best[np.argmin(np.abs(near_best - (len(window) - 1) / 2))])
    return (best, 0) if width > height else (0, best)
