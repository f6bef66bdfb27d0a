"""Long-form production: books, scripts and subtitles in; timed audio, subtitles and takes out.

- :mod:`~app.infer.longform.sources`: txt / Markdown / EPUB / SRT / VTT / voice scripts -> :class:`Script` of lines.
- :mod:`~app.infer.longform.state`: the job on disk (voices, options, lines, takes) for resume.
- :mod:`~app.infer.longform.job`: :class:`LongformJob` makes the missing takes, regenerates or
  chooses one line's take, and assembles.
- :mod:`~app.infer.longform.fit`: dubbing: a line fitted to its cue with the model's own speed.
- :mod:`~app.infer.longform.assemble`: the whole audio, one file per line, SRT/VTT and timestamps
  from the samples produced.
- :mod:`~app.infer.longform.subtitles`: subtitle times and files.
- :mod:`~app.infer.longform.cli`: ``python -m app.infer.longform``.
"""

from app.infer.longform.assemble import Assembly
from app.infer.longform.fit import FitOptions, FitReport
from app.infer.longform.job import JobStopped, LongformJob, Speak
from app.infer.longform.sources import KINDS, Line, Script, SourceError, kind_of, parse_source, read_source
from app.infer.longform.state import JobOptions, JobState, JobStateError, LineState, Take, Voice

__all__ = [
    "KINDS",
    "Assembly",
    "FitOptions",
    "FitReport",
    "JobOptions",
    "JobState",
    "JobStateError",
    "JobStopped",
    "Line",
    "LineState",
    "LongformJob",
    "Script",
    "SourceError",
    "Speak",
    "Take",
    "Voice",
    "kind_of",
    "parse_source",
    "read_source",
]
