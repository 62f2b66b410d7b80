"""Running many edited models: the resumable plan sweep (:mod:`.sweep`), its on-disk cache
(:mod:`.cache`) and where its tasks run (:mod:`.executors`: local processes or Ray)."""
