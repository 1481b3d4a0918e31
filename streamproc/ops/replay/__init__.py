"""`streamproc replay`: re-producing a range of an input or sink topic."""
