"""Jobs: each is ``run_<job>(frozen config) -> Record``, and each ``mmfeatures <job>`` subcommand wraps one.

A job checks its output folder before working, writes ``result.json`` (a ``Record``) beside its figures,
and reuses that record when rerun with the same config. Stores and SAEs are cached and resumable.
"""

from mmfeatures.jobs.analyze import AnalyzeJob, run_analyze
from mmfeatures.jobs.common import Record
from mmfeatures.jobs.extract import ExtractJob, run_extract
from mmfeatures.jobs.match import MatchJob, run_match
from mmfeatures.jobs.steer import SteerJob, run_steer
from mmfeatures.jobs.train import TrainJob, run_train

__all__ = ["AnalyzeJob", "ExtractJob", "MatchJob", "Record", "SteerJob", "TrainJob", "run_analyze", "run_extract",
           "run_match", "run_steer", "run_train"]
