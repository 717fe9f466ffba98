"""``ExternalizedCheckpointRetention`` under its PyFlink 2.x module path."""

from flinkcore.datastream.checkpoint_config import ExternalizedCheckpointRetention

__all__ = ["ExternalizedCheckpointRetention"]
