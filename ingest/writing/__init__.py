"""Writing: one writer thread per destination (``writer``) writes batches to its destination
(``destinations``), keeps what a store cannot take in its disk spool (``spool``, ``spool_records``)
and sorts failures into what an operator must know (``failures``)."""
