"""The bad-input matrix: one row per mistake a user can make (config, data, checkpoint, pairs, CSV,
HDF5, run folders), each answered by one `error:` line, exit 2, and no change to what is on disk."""
