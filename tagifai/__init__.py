"""tagifai: the Made With ML project-tagging workflows as a library.

Pure logic with plain Python types, dataframes and paths. This package never imports ``kfp``:
components (``components/``) and pipelines (``pipelines/``) build on it, not the other way round.
"""

__version__ = "0.1.0"
