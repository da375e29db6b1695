"""archiver: a complete, tagged, offline archive of AI-music generation tasks."""

__version__ = "0.1.0"
