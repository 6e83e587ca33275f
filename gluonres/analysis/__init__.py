"""Reading a network: its structure (``summary``), what it does inside (``responses``)
and how well it classifies (``evaluation``)."""
from gluonres.analysis.responses import gradient_norms, layer_responses, response_layers  # noqa: F401
from gluonres.analysis.summary import (Stage, Summary, graph_shapes, summary,  # noqa: F401
                                       trainable_params)
