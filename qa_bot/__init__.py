"""新闻问答: answer questions from a folder of Jekyll news posts, offline."""

__version__ = "0.1.0"
