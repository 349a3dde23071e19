"""Resource limits shared by the engines."""

#: Bytes of stacked work (perturbed thetas, stacked changes) an engine holds at once, by default.
DEFAULT_MAX_MEMORY = 256 * 2**20
