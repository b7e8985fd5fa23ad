"""Decoding: a topic becomes a source (``topics``), a payload becomes points, a document or a status
(``decode`` and the payload codecs it registers: ``codecs``, ``senml``), checked against the name
allow-lists (``names``), timestamps (``timestamps``) and the per-device cardinality budget
(``cardinality``). Pure: no I/O."""
