"""V3 nodes (TrickleInput, TrickleOutput, and LoadTensor/SaveTensor compatibility)."""
