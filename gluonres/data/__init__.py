"""Datasets as decoded in-memory arrays, the papers' augmentation, splits, RecordIO,
and the preprocessing that travels with weights.

``sources`` reads every supported source into :class:`ImageArrays` (:func:`load`);
``images`` brings one image to a network's size and colour (:func:`fit_pixels`, shared
with the export runtime); ``splits`` draws seeded subsets and validation splits;
``augment`` pads, crops and flips whole batches; ``recordio`` packs and reads RecordIO;
``preprocess`` turns pixels into network input.
"""
from gluonres.data.arrays import JPEG_CAVEAT, Data, ImageArrays  # noqa: F401
from gluonres.data.images import COLORS, fit_pixels  # noqa: F401
from gluonres.data.augment import epoch_batches, random_crop_flip  # noqa: F401
from gluonres.data.preprocess import REFERENCE, Preprocess  # noqa: F401
from gluonres.data.recordio import RECORDIO_META, pack_recordio, read_recordio  # noqa: F401
from gluonres.data.loading import load  # noqa: F401
from gluonres.data.sources import (CIFAR10_CLASSES, CIFAR_RECORD, DIGITS_TEST,  # noqa: F401
                                   IMAGE_EXTENSIONS, LOSSY_EXTENSIONS, cache_dir,
                                   cifar10_binary, decode, digits, gluon_cifar10,
                                   image_files, image_folder, resolve_root)
from gluonres.data.splits import balanced_subset, split_validation  # noqa: F401
