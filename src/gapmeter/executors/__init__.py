"""Where a run's requests are computed: in this process (the default) or on a Ray cluster.

Ray is an optional extra (``pip install 'gapmeter[ray]'``); nothing here imports it until
``--executor ray`` is asked for (``ray_import.import_ray``).
"""
