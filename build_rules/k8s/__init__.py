"""Kubernetes objects for a serving image, as command-line tools that build rules and `kiln run` call.

`python -m kiln.build_rules.k8s.manifests` writes Deployment + Service YAML from an OCI image layout
(the image by digest); `python -m kiln.build_rules.k8s.deploy` prints it or pipes it to `kubectl apply`.
"""
