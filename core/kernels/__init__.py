"""Hand-written CPU kernels for the hottest metanetwork steps, each with a torch reference it is tested against."""
