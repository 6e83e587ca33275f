"""Checks and the feature/classifier interface shared by every model family."""
import dataclasses

from mxnet.gluon import nn

from gluonres.errors import GluonresError


def _check_positive_int(name, value, example):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise GluonresError(f"{name} must be a positive integer, got {value!r}; pass "
                            f"e.g. {name}={example}")


def check_classes(classes):
    """Refuse a class count that is not a positive integer.

    Raises
    ------
    GluonresError
        If ``classes`` is not an ``int`` >= 1 (a ``ValueError``, as before).
    """
    _check_positive_int("classes", classes, 10)


def check_in_channels(in_channels):
    """Refuse an input channel count that is not a positive integer.

    Raises
    ------
    GluonresError
        If ``in_channels`` is not an ``int`` >= 1 (1 for grey images, 3 for RGB).
    """
    _check_positive_int("in_channels", in_channels, "1 for grey images or 3 for RGB")


class FeaturesHead:
    """Feature extraction and classifier replacement for a network (a mixin).

    A family sees its network as two chains of blocks, returned by ``_layers()``:
    the *features*, which end with the last feature map before the global pooling
    (for a pre-activation ResNet, after its final BN-ReLU), and the *head*, which
    pools (or flattens) and classifies and ends in the classifier, a ``Dense``. The
    forward pass is ``forward_head(forward_features(x))``, so the two parts add up to
    the network by construction. The chains are lists of the network's own child
    blocks: parameter names and the children's layout are the family's.

    Use it as the first base of a ``HybridBlock``: ``class Net(FeaturesHead,
    HybridBlock)``, with ``classes`` set in ``__init__``.
    """

    def _layers(self):
        """``(features, head)``: lists of child blocks, the classifier last in ``head``."""
        raise NotImplementedError

    @property
    def classifier(self):
        """The final ``Dense`` layer, which :meth:`reset_classifier` replaces."""
        return self._layers()[1][-1]

    def forward_features(self, x):
        """The feature maps before the global pooling.

        Parameters
        ----------
        x : NDArray or Symbol
            Input, ``(N, in_channels, H, W)``.

        Returns
        -------
        NDArray or Symbol
            ``(N, C, h, w)``; ``forward_head`` of it is the network's output.
        """
        for layer in self._layers()[0]:
            x = layer(x)
        return x

    def forward_head(self, features, pre_logits=False):
        """Pool (or flatten) the features and classify them.

        Parameters
        ----------
        features : NDArray or Symbol
            What :meth:`forward_features` returns.
        pre_logits : bool, default False
            Stop before the classifier and return its input, ``(N, D)``: the pooled
            features (for AlexNet, VGG and LeNet-5, the output of their last hidden
            fully connected layer).

        Returns
        -------
        NDArray or Symbol
            ``(N, classes)`` scores, or ``(N, D)`` with ``pre_logits``.
        """
        head = self._layers()[1]
        x = features
        for layer in head[:-1]:
            x = layer(x)
        # a Dense flattens its input, so (N, C, 1, 1) maps are what it sees as (N, C)
        return x.flatten() if pre_logits else head[-1](x)

    def hybrid_forward(self, F, x):
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, classes):
        """Replace the classifier by a new, uninitialised one with ``classes`` outputs.

        Every other layer keeps its weights. The new ``Dense`` takes the old one's place,
        parameter names (e.g. ``head_dense_weight``), input width, initialisers and
        dtype, so weights files saved after fine-tuning load into
        ``get_model(name, classes=classes)``. ``classes`` and ``model_info`` follow.
        A hybridized network rebuilds its graph at the next call. Make the ``Trainer``
        afterwards: one made before holds the old classifier's parameters.

        Parameters
        ----------
        classes : int
            Outputs of the new classifier.

        Returns
        -------
        mxnet.gluon.nn.Dense
            The new classifier (also ``net.classifier``), to initialise before the
            next forward pass: ``net.reset_classifier(10).initialize(ctx=ctx)``, or
            ``gluonres.models.init.he_initialize(net, ctx=ctx)``, which initialises
            only what is not yet initialised (and seeds mxnet's generator). Both are
            silent; ``net.initialize()`` also skips the initialised parameters but warns
            about each one.

        Raises
        ------
        GluonresError
            If ``classes`` is not a positive integer.
        """
        check_classes(classes)
        old = self.classifier
        weight, bias = old.weight, old.bias
        # outside any name scope the prefix is taken whole: the old parameter names
        # (``_flatten`` is where a Dense keeps its ``flatten`` argument)
        new = nn.Dense(classes, in_units=weight.shape[1], use_bias=bias is not None,
                       flatten=old._flatten, dtype=weight.dtype, weight_initializer=weight.init,
                       bias_initializer=bias.init if bias is not None else "zeros",
                       prefix=old.prefix)
        _replace_child(self, old, new)
        self.classes = classes
        info = getattr(self, "model_info", None)
        if info is not None:
            self.model_info = dataclasses.replace(info, classes=classes)
        return new


def _replace_child(root, old, new):
    """Put ``new`` in ``old``'s place (same key and position) among ``root``'s blocks."""
    path = _path_to(root, old)
    if path is None:
        raise LookupError(f"{old.name} is not a layer of {root.name}")
    parent, key = path[-1]
    # Gluon 1.x keeps children by key only in ``_children``, which a Sequential reads;
    # a child held as an attribute is also in the instance's ``__dict__``
    if parent.__dict__.get(key) is old:
        setattr(parent, key, new)
    else:
        parent.register_child(new, key)
    # each enclosing hybridized graph still holds the old layer's parameters
    for block, _ in path:
        block._clear_cached_op()


def _path_to(root, target):
    """``[(block, key), ...]`` from ``root`` down to ``target``'s parent, else ``None``."""
    for key, child in root._children.items():
        if child is target:
            return [(root, key)]
        below = _path_to(child, target)
        if below is not None:
            return [(root, key)] + below
    return None
