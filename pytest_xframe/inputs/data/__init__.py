"""Judging on the user's own data (``data=``): reading and checking samples, running every one,
exploring around them. The modules import numpy; this package's ``options`` imports nothing heavy.

* ``sources``: a directory of ``.npz``, one stacked ``.npz``, a list or ``Dataset``, streamed;
* ``samples``: one sample bound to the inputs and checked against their specs;
* ``dataset``: ``open_data`` and the :class:`~pytest_xframe.inputs.data.dataset.DataSet` a check reads;
* ``explore``: hypothesis's strategy around the samples;
* ``options``: validation of ``data``, ``data_limit``, ``data_scale``.
"""
