TITLE jd_nmda: double-exponential NMDA synapse with the Jahr-Stevens Mg2+ block

COMMENT
Written for jaxdend from the published equations; mirrors jaxdend.synapses.NMDA.
  g = (B - A), A and B jump by weight*factor at each event (factor: peak of B - A is weight)
  i = g * mgblock(v) * (v - e),  mgblock = 1/(1 + exp(-mg_slope v) mg/mg_k)
weight in uS, i in nA.
ENDCOMMENT

NEURON {
    POINT_PROCESS jd_nmda
    RANGE tau1, tau2, e, i, g, mg, mg_slope, mg_k
    NONSPECIFIC_CURRENT i
}

UNITS {
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
}

PARAMETER {
    tau1 = 0.29 (ms) <1e-9,1e9>
    tau2 = 43 (ms) <1e-9,1e9>
    e = 0 (mV)
    mg = 1 (mM)
    mg_slope = 0.062 (/mV)
    mg_k = 3.57 (mM)
}

ASSIGNED {
    v (mV)
    i (nA)
    g (uS)
    factor
}

STATE {
    A (uS)
    B (uS)
}

INITIAL {
    LOCAL tp
    A = 0
    B = 0
    tp = (tau1*tau2)/(tau2 - tau1) * log(tau2/tau1)
    factor = 1/(-exp(-tp/tau1) + exp(-tp/tau2))
}

BREAKPOINT {
    SOLVE state METHOD cnexp
    g = B - A
    i = g/(1 + exp(-mg_slope*v)*mg/mg_k)*(v - e)
}

DERIVATIVE state {
    A' = -A/tau1
    B' = -B/tau2
}

NET_RECEIVE(weight (uS)) {
    A = A + weight*factor
    B = B + weight*factor
}
