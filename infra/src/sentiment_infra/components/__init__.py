"""One ComponentResource per module: the stack's building blocks, wired together by ``infra/__main__.py``."""
