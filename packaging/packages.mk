# packaging targets (filled below)
