"""The Overlays page's editors, one module per overlay kind (files, workshop, script), each
with `draw(core, actor, chosen)`, and the parts they share (parts.py). Every rule is the
domain's (left4me_ui.overlays); these only draw."""
