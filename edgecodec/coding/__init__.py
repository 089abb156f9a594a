"""Inter-frame coding in id space: P-frames against a reference grid of ids.

* :mod:`edgecodec.coding.inter`: the inter prior (integer tables, a :class:`~edgecodec.priors.SequentialPrior`) and
  the counter that makes its tables.
* :mod:`edgecodec.coding.replenish`: conditional replenishment, the sender's choice of which ids to update.
* :mod:`edgecodec.coding.gop`: the sender's I/P decision and reference (:class:`InterEncoder`) and the receiver's
  reference store (:class:`ReferenceStore`).

The intra prior stays in :mod:`edgecodec.priors`; :mod:`edgecodec.entropy` codes both.
"""
