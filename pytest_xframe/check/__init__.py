"""One parity check, from the user's model to a report: the run over drawn examples.

``run`` drives a check (preflight, export, prepare each backend, draw inputs with hypothesis,
judge every example, hand a failure to ``diagnose``); ``data`` runs the samples of ``data=`` as
they are and judges them over the data set; ``quantization`` asks each int8 target what it really
quantized; ``memo`` keeps what a session's checks share (exports, prepared runners, torch's
outputs); ``forward`` runs the user's model as the reference; ``model_state`` puts the model back
as it was; ``preflight`` refuses what cannot work before anything runs; ``threads`` sizes the
frameworks' thread pools.
"""
