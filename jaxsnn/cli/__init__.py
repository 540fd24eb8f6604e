"""The command-line engine behind ``train.py`` and ``convert.py`` (the top layer of jaxsnn).

- :mod:`.convert`: ``convert_and_evaluate`` (restore, run a method, evaluate, write outputs);
- :mod:`.restore`: loading the ANN (partial Orbax restore, or a PyTorch ``.pth``);
- :mod:`.evaluate`: exact masked evaluation of ANN and SNN over a split, on every device;
- :mod:`.outputs`: the run folder, the saved SNN and :func:`~jaxsnn.cli.outputs.load_snn`;
- :mod:`.console`: logging to the run's log file, warnings, and the one-line error contract.
"""
