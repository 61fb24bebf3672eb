"""Contracts shared by every lambdatwin package: the bottom layer.

Nothing here imports anything else from the project, so ``worker``-adjacent
code, the emulator, ``sim``, ``realaws`` and the CLI can all depend on it
without cycles. Each fact lives in exactly one module:

- :mod:`.aws`: region, account, ARN builders and splitters, Lambda and Step
  Functions limits, error-type names.
- :mod:`.errors`: the :class:`~.errors.UserError` family (one line, exit 2).
- :mod:`.job`: the job contract: roles, handlers, substitution keys, the
  execution input, partition defaults, run ids.
- :mod:`.lambdas`: function configuration, invocation records, the invoker protocol.
- :mod:`.cloudwatch`: CloudWatch Logs names and the START/END/REPORT lines.
- :mod:`.runrecord`: the versioned run record every backend writes.
- :mod:`.units`: sizes and durations on the command line.
"""
