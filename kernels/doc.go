// Package kernels provides the guest kernels yank boots: Debian's
// linux-source-6.1 tarball or a kernel tree on disk, patched by a per-variant
// patch series, configured from tinyconfig plus an embedded fragment, built
// once and cached outside the checkout.
//
// Variants are data: variants.json lists them and patches/<variant>/ holds
// each one's git-format patches, applied in file-name order on top of the
// variant's base (see README.md). A variant whose base is already built is
// built incrementally from a copy of the base's build tree.
package kernels
