"""The circuit explorer: a local web app (``circuits explore``) over units, families, the circuit
graph and edits (issue 20; a local stand-in for OpenAI Microscope, Curve Detectors / Curve Circuits).

- :mod:`.config`: :class:`~.config.ExploreConfig` (model, images, cache folder, host, port, settings);
- :mod:`.store`: the on-disk cache (SHA-256 keys over model fingerprint, kind, settings, plan; JSON and PNG);
- :mod:`.fasttune`: radial tuning through the receptive-field cone with the trunk cached;
- :mod:`.context`: the loaded model, catalog and caches shared by the pages;
- :mod:`.pages` / :mod:`.family`: the JSON payloads; :mod:`.figures`: their PNGs;
- :mod:`.jobs`: background jobs (one compute worker); :mod:`.assets` + :mod:`.builds`: feature visualization and
  dataset examples; :mod:`.edit_jobs`: the edit panel;
- :mod:`.server`: :func:`~.server.create_app` (FastAPI); :mod:`.export`: the static site.
"""
