"""The use cases: one function per thing a parent or a script does, behind all three doors.

The app (ui/), the API (the same gradio handlers) and the CLI (pipeline/cli/) call only these,
and every function returns the same plain record to each of them (`to_json()` gives the JSON
that both the API and `--json` print). Grouped by what they act on: characters, training,
books, the work that runs long (to follow or cancel it), and the system they run on.
"""
