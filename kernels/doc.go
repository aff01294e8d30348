// Package kernels builds and caches the guest kernels yank boots: a Debian
// linux-source tarball (6.1 or 6.12) or a kernel tree on disk, patched by a
// per-variant patch series, configured from tinyconfig plus an embedded
// fragment, built once and cached outside the checkout.
//
// Variants are data: variants.json lists them and patches/<variant>/ holds
// each one's git-format patches, applied in file-name order on top of the
// variant's base (see docs/kernels.md). A variant whose base is already built is
// built incrementally from a copy of the base's build tree.
//
// A build runs in stages, one file each: plan.go resolves the request,
// unpack.go prepares the tree, patch.go applies the series, config.go
// configures, compile.go runs make, install.go turns the result into a
// cache entry; builder.go sequences them, lock.go serializes builders and
// failure.go reports a failed stage.
package kernels
