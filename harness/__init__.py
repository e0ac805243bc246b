"""harness: evaluate a ladder of model sizes on lm-eval tasks with Ray, and fit how abilities scale.

The packages, in the order data flows through them (each imports only those before it, and the
foundation modules at the bottom):

    cli/         one module per verb (run, plan, ls, analyze, import, compute, submit, zoo)
    plan/        sweep -> model revisions (models.py; hub revisions to commits) x tasks -> requests built
                 once through lm-eval (requests.py), cached (request_key.py, request_cache.py) and built
                 in processes (building.py) -> shards and their keys (shards.py); checks before any
                 worker starts (preflight.py)
    engine/      the only Ray code: run.py (plan -> preflight -> execute -> finalize -> analyze),
                 feed.py (tasks built on a thread, their shards fed to the driver as they come),
                 driver.py (the dispatch loop), replicas.py (live replicas), worker.py (the actor),
                 cluster.py, signals.py (SIGTERM), state.py, progress.py, submit.py (Ray Jobs API)
      scheduling/  pure policy beneath the engine: policy, resources, placement, layout, costs, simulator
      backends/    torch lives here (and in zoo/): loading.py (LoadSpec), runner.py, registry.py
                   (hf | fast), fast/ (pack, score, generate, lm)
    results/     schemas.py, store.py (every read and write of a run folder; a folder that grows),
                 manifest.py, lock.py (one writer per folder), metrics.py (lm-eval metrics per document),
                 finalize.py (samples and scores.parquet), remote.py + mirror.py (a folder in a bucket:
                 a local working copy kept in step)
    ingest/      `harness import`: lm-eval JSON / --log_samples JSONL / CSV / Parquet made elsewhere -> the
                 same run folder (detect, lmeval_json, lmeval_samples, twins, table, families, meta, sizes,
                 merge, folder, importer); beside results, which it writes through
    analysis/    reads Parquet only: series, laws, fit/, bootstrap, predict/, emergence, signal, compute,
                 frontier and isoflop (compute-optimal N and D), plot, report, analyze.py (the
                 `harness analyze` pipeline)
    zoo/         the embedded ladder: corpus, data, formats, train, probe, eval, ladder (build, list)

    foundation:  config.py (the typed sweep), checkpoint.py (what a checkpoint is, read without
                 torch), errors.py (UserError: one line, exit 2), files.py (atomic writes: a reader
                 sees a file whole or not at all)

Where to look:
    a metric is computed     results/metrics.py (`aggregate_group`, lm-eval's process_results)
    a shard is scored        engine/worker.py (`ShardWorker.run`) -> backends/runner.py (`RequestRunner`)
    a fit is made            analysis/laws.py on analysis/fit/ (power law, sigmoid, Chinchilla)
    a shard is keyed         plan/shards.py (`shard_key`, over checkpoint.content_fingerprint)
    Ray is used              engine/ only
"""
