"""Measurements: synthetic stimuli (:mod:`.stimuli`), tuning measures (:mod:`.tuning`), image
listing and loading (:mod:`.images`), reference activation statistics (:mod:`.statistics`),
classification (:mod:`.classify`), family discovery (:mod:`.discovery`), dataset statistics
(:mod:`.dataset`) and the reference tuning table (:mod:`.reference`)."""
