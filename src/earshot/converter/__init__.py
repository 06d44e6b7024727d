"""Converter: consumes `JobSubmitted` from the `video` queue, runs ffmpeg, stores the audio blob.

Reports progress and the outcome as job events; the gateway owns the job record. It holds no
database connection and never touches users or mail; `ffmpeg.py` alone spawns ffmpeg.
"""
