"""`harness analyze` and `harness compute`: scaling laws fitted to a finished run's Parquet files.

Reads scores.parquet and samples/ only (the file contract of harness.results), never a model,
Ray or torch. Entry point: `analyze.analyze_run`.
  series     scores + samples -> one (size, value) series per task and metric, with paired
             per-document bootstrap resamples
  fit/       the curve fits themselves (power law, sigmoid, Chinchilla L(N, D))
  laws       one law fitted to one series, with intervals and a band
  predict/   the back-test (fit all sizes but the largest, predict it) and predictions at new sizes:
             methods, intervals with the law's own error, the chosen method
  signal     signal and noise per task; "no signal" stops the sigmoid and the emergence verdict
  chance     the accuracy of guessing, per task
  emergence  emergence score (noise-floored), "step" and the mirage check
  task_fits  which laws each task gets, and what they found
  tables     fits.parquet and bands.parquet
  plot, answers, report   plots/*.png and report.md (answers first)
  bootstrap  the resampling: over documents (paired across models) or over models
  compute    C = 6 N D and the compute-optimal frontier (`harness compute`)
  isoflop    Chinchilla Approach 2: IsoFLOP profiles, their parabola minima, N_opt ∝ C^a
  frontier   a reliable L(N, D) fit's frontier with intervals (Approach 3) beside Approach 2's (which
             needs separate runs, not the law), as fits.parquet rows; fit/residuals checks the fit's
             residuals against N, D and their interaction
  plot_isoflop, report_frontier   plots/<task>_isoflop.png and the report's frontier section
"""
