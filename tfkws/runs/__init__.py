"""The run folder: what ``tfkws train`` writes and every later stage reads.

``config`` (what the run is: ``run_config.json``), ``files`` (the names of its files and what
they say) and ``model`` (its trained model, rebuilt and loaded). Training writes runs; export,
QAT fine-tuning, distillation, slimmable extract/select, verify and the benchmarks read them
through this package, never through the trainer.
"""
