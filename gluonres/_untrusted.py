"""Reading files gluonres did not write: limits on what one input may make it read or
allocate, regular files only, image sizes from the header, text safe for a terminal.

The data sources (training folders, archives, RecordIO) and the export runtime
(manifests, graphs, params, images to predict) share these, so one environment variable
sets one limit everywhere.
"""
import os
import stat
import struct
import unicodedata

from gluonres.errors import DataError


#: What one input may make gluonres read or allocate: ``{name: (environment variable,
#: default)}``; setting the variable raises (or lowers) the limit.
LIMITS = {
    # decoded RGB bytes are 3x this: 8192 x 8192 pixels is about 200 MB
    "image_pixels": ("GLUONRES_MAX_IMAGE_PIXELS", 1 << 26),
    # an encoded image file or RecordIO record (and each member of an archive)
    "image_bytes": ("GLUONRES_MAX_IMAGE_BYTES", 1 << 26),
    # any one file of an export: params (VGG-16's are 0.53 GB), ONNX
    "file_bytes": ("GLUONRES_MAX_FILE_BYTES", 1 << 31),
    # manifest and symbol JSON (ResNet-152's symbol is well under 1 MB)
    "json_bytes": ("GLUONRES_MAX_JSON_BYTES", 1 << 26),
    # parameters plus every node's output for one image, in elements
    "graph_elements": ("GLUONRES_MAX_GRAPH_ELEMENTS", 1 << 28),
}

# JPEG start-of-frame markers (they hold the size); C4, C8 and CC are other segments
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def limit(name):
    """The value of one of :data:`LIMITS`: its environment variable, else the default.

    Raises
    ------
    GluonresError
        If the variable is set to something other than a positive integer.
    """
    var, default = LIMITS[name]
    value = os.environ.get(var)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise DataError(f"{var}={printable(value[:40])!r} is not a positive integer; set "
                            f"it to a number such as {default} or unset it")
    return number


def over_limit(name, what, found, fix=None):
    """The message for ``what`` (``found``) over the limit ``name``: the limit, the
    variable that sets it, and the value that would let this input through."""
    var = LIMITS[name][0]
    return (f"{what} ({found:,}) exceeds the limit of {limit(name):,} set by {var}; "
            f"{fix or 'shrink or remove it'}, or if you trust the input, raise the limit: "
            f"{var}={found}")


def printable(text):
    """``text`` safe to print on a terminal: control, format, surrogate, private and
    unassigned characters and line separators are shown as escapes (``\\x1b``, ``\\n``,
    ``\\udcff``), so a class name or path cannot send terminal codes, fake output lines or
    characters that a strict UTF-8 stream refuses.
    """
    out = []
    for ch in str(text):
        if ch in "\n\r\t":
            out.append(repr(ch)[1:-1])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def kind(mode):
    """What a non-regular file is, from its ``st_mode``, for a message."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def regular_size(path, what, fix, error=DataError):
    """The size of ``path`` if it is (or links to) a regular file; else ``error`` saying
    what the path is and ``fix``."""
    try:
        info = os.stat(path)  # follows symlinks: a link to /dev/zero is a character device
    except FileNotFoundError:
        raise error(f"{what} {path!r} does not exist; {fix}") from None
    except OSError as err:
        raise error(f"cannot read {what} {path!r} ({err.strerror}); {fix}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path!r} is {kind(info.st_mode)}, not a regular file; {fix}")
    return info.st_size


def read_bytes(path, what, fix, limit_name, error=DataError):
    """The bytes of the regular file ``path``, at most ``limit(limit_name)`` of them, read
    without blocking on a FIFO swapped in after the check.

    Raises
    ------
    error
        If the file is not a regular file, is over the limit or cannot be read.
    """
    size = regular_size(path, what, fix, error)
    most = limit(limit_name)
    if size > most:
        raise error(over_limit(limit_name, f"the size of {what} {path!r} in bytes", size))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise error(f"{what} {path!r} is not a regular file; {fix}")
            data = f.read(most + 1)  # bounded even if the file grew after the check
    except OSError as err:
        raise error(f"cannot read {what} {path!r} ({err.strerror}); {fix}") from None
    if len(data) > most:
        raise error(over_limit(limit_name, f"the size of {what} {path!r} in bytes", len(data)))
    return data


def image_size(blob):
    """``(width, height)`` from the header of PNG, JPEG or BMP bytes, else ``None``.

    Only the header is read, so a size can be refused before anything is decoded.
    """
    if blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR" and len(blob) >= 24:
        return struct.unpack(">II", blob[16:24])
    if blob[:2] == b"BM" and len(blob) >= 26:
        if struct.unpack("<I", blob[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", blob[18:22])
        width, height = struct.unpack("<ii", blob[18:26])
        return abs(width), abs(height)  # a negative height means top-down rows
    if blob[:2] == b"\xff\xd8":
        i = 2
        while i + 4 <= len(blob):
            if blob[i] != 0xFF:
                return None
            marker = blob[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
                i += 2
                continue
            if marker in _JPEG_SOF:
                if i + 9 > len(blob):
                    return None
                height, width = struct.unpack(">HH", blob[i + 5:i + 9])
                return width, height
            if marker == 0xDA:  # scan data before any frame header
                return None
            i += 2 + struct.unpack(">H", blob[i + 2:i + 4])[0]
    return None
