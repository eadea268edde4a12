"""The image lock imgx's edits and rewrites hold: it lives in the library
(diskimage.imagelock), so that rdeploy's writers take the same one."""

from diskimage.imagelock import image_lock  # noqa: F401
