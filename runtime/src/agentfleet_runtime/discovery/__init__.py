"""Where a runtime learns what to run and tells others it runs: the operator-rendered
config file, watched and applied live (:mod:`.config_file`, :mod:`.reload`), and the
registry of runtime replicas in the state backend (:mod:`.instances`)."""
