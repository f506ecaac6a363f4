"""Runs inside TouchDesigner (copied into the generated build script): builds the `livevace`
COMP from the PARAMS table, with the node's video in, OSC out, OSC feedback in and the
runtime that connects custom parameters to OSC.

Operator parameter names have changed between TouchDesigner builds, so every setting goes
through `_set`, which tries the known names and reports what must be set by hand instead
of stopping half-way. Nothing here runs outside TouchDesigner.
"""

PAREXEC_CALLBACKS = '''# livevace: custom parameter changes -> OSC to the node (see the runtime DAT)
def onValueChange(par, prev):
    op('runtime').module.on_value_change(parent(), par)
    return

def onPulse(par):
    op('runtime').module.on_pulse(parent(), par)
    return
'''

OSCIN_CALLBACKS = '''# livevace: feedback from the node -> custom parameters (see the runtime DAT)
def onReceiveOSC(dat, rowIndex, message, bytes, timeStamp, address, args, peer):
    op('runtime').module.on_osc(parent(), address, args)
    return
'''


def build(params, settings, runtime, parent_path="/project1", name="livevace"):
    """Create (or re-create) the COMP; returns it. Prints what to finish by hand."""
    import sys

    import td

    problems = []

    def _set(node, names, value=None, expr=None):
        for par_name in names:
            par = getattr(node.par, par_name, None)
            if par is None:
                continue
            try:
                if expr is None:
                    par.val = value
                else:
                    par.expr = expr
                    par.mode = td.ParMode.EXPRESSION
                return True
            except Exception as exc:  # a read-only or renamed parameter: report, go on
                problems.append("%s.%s: %s" % (node.name, par_name, exc))
                return False
        problems.append("%s: none of %s exists; set it by hand to %s"
                        % (node.name, "/".join(names), expr or repr(value)))
        return False

    def _append(page, spec):
        style = spec["style"]
        for i, par_name in enumerate(spec["pars"]):
            label = spec["label"] + (" %d" % (i + 1) if len(spec["pars"]) > 1 else "")
            group = getattr(page, "append" + style)(par_name, label=label)
            par = group[0]
            try:
                par.help = spec["help"]
            except Exception:  # builds before custom parameter help: the label must do
                pass
            if style == "Menu":
                par.menuNames = spec["choices"]
                par.menuLabels = spec["choices"]
            if "min" in spec and style in ("Float", "Int"):
                par.min = par.normMin = spec["min"]
                par.max = par.normMax = spec["max"]
                par.clampMin = par.clampMax = True
            if style != "Pulse":
                default = spec["default"]
                par.default = default[i] if isinstance(default, list) else default
                par.val = par.default

    root = td.op(parent_path)
    old = root.op(name)
    if old is not None:
        old.destroy()
    comp = root.create(td.baseCOMP, name)
    comp.store("livevace_params", params)
    comp.store("livevace_settings", settings)

    pages = {}
    for spec in params:
        if spec["page"] not in pages:
            pages[spec["page"]] = comp.appendCustomPage(spec["page"])
        _append(pages[spec["page"]], spec)
    for spec in settings["extra_pars"]:
        if spec["page"] not in pages:
            pages[spec["page"]] = comp.appendCustomPage(spec["page"])
        _append(pages[spec["page"]], spec)
    windows = sys.platform.startswith("win")
    comp.par.Video = "spout" if windows else "ndi"

    code = comp.create(td.textDAT, "runtime")
    code.text = runtime
    stats = comp.create(td.tableDAT, "stats")
    stats.clear()

    oscout = comp.create(td.oscoutDAT, "oscout")
    _set(oscout, ("address", "netaddress"), expr="parent().par.Host")
    _set(oscout, ("port",), expr="parent().par.Port")

    callbacks = comp.create(td.textDAT, "oscin_callbacks")
    callbacks.text = OSCIN_CALLBACKS
    oscin = comp.create(td.oscinDAT, "oscin")
    _set(oscin, ("port",), expr="parent().par.Feedbackport")
    _set(oscin, ("callbacks",), value=callbacks.name)

    parexec = comp.create(td.parameterexecuteDAT, "parexec")
    parexec.text = PAREXEC_CALLBACKS
    _set(parexec, ("op", "ops"), value="..")
    _set(parexec, ("pars", "parameters"), value="*")
    for toggle in ("custom", "valuechange", "onpulse", "active"):
        _set(parexec, (toggle,), value=True)
    _set(parexec, ("builtin",), value=False)

    ndi = comp.create(td.ndiinTOP, "ndi_in")
    code.module.find_ndi(comp)  # by the stream name among the sources NDI lists
    _set(ndi, ("name", "sourcename"), expr="parent().par.Ndisource")
    spout = comp.create(td.syphonspoutinTOP, "spout_in")
    _set(spout, ("sendername", "senderName"), expr="parent().par.Spoutsender")
    video = comp.create(td.switchTOP, "video")
    video.inputConnectors[0].connect(ndi)
    video.inputConnectors[1].connect(spout)
    _set(video, ("index",), expr="parent().par.Video.menuIndex")
    out = comp.create(td.outTOP, "out1")
    out.inputConnectors[0].connect(video)

    for i, node in enumerate((code, stats, oscout, callbacks, oscin, parexec)):
        node.nodeX, node.nodeY = -400, 300 - 150 * i
    for node, (x, y) in ((ndi, (0, 0)), (spout, (0, -150)), (video, (200, -75)),
                         (out, (400, -75))):
        node.nodeX, node.nodeY = x, y

    print("livevace: built %s (%d parameters). Start the node with --feedback 127.0.0.1:%d"
          % (comp.path, len(params), settings["feedback_port"]))
    for problem in problems:
        print("livevace: set by hand: " + problem)
    return comp
