"""Plans as actions: an ordered list of rule steps (skill card id + options) that the `rules`
coder applies one after another, each step a candidate built on the previous one. A plan can
come from the user (`--plan`), the rules' own heuristic, or a model (`--planner`), which is
shown one prompt format (`prompt.plan_prompt`) -- the same one `kopt train --planner` trains on."""
