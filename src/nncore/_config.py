"""Thread control and build report (filled in by the foundation work)."""


def set_num_threads(n):
    raise NotImplementedError


def show_config():
    raise NotImplementedError
