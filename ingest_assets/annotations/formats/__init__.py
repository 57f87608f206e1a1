"""One module per label format: a function from a file's bytes to its records (``Parsed``)."""
