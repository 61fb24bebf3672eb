"""The ``lambdatwin`` command line: the roof over every package.

This is the only package that imports the emulator, ``sim``, ``realaws`` and
``rendezvous`` together. :mod:`.main` builds the parser from each command
module, named explicitly, and turns a :class:`~emulator.contracts.errors.UserError`
into one line on stderr and exit code 2.
"""
