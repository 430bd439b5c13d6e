"""Records trajectories (frames, actions, rewards, ends) of any Gymnasium game into one HDF5 file,
and reads them back for training."""
