"""OCI images without a daemon: layouts, a Debian base layer, push to a registry, `docker load` tarballs.

Each verb is a command-line tool that build rules and `kiln run` call:
`python -m kiln.build_rules.oci.{base_layer,image,index,push,load}`. They hand each other
OCI image layout directories (image-spec v1.1), never private structures.
"""
