"""The SVC tab: singing voice conversion in three steps (:mod:`.tab` lays them out).

``dataset`` (recordings into an experiment, preprocessing), ``train`` (the training job, its
status and losses), ``convert`` (a song into a trained voice); ``experiment`` holds what the
steps share (the experiment named in the page). Each step is module-level handlers plus a
``build()`` that only lays out components and wires them.
"""
