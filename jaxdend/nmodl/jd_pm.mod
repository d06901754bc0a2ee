TITLE jd_pm: Pospischil et al. 2008 slow non-inactivating (M-type) potassium current

COMMENT
Written for the jaxdend test suite from the published equations (Pospischil et al. 2008).
Mirrors jaxdend.channels.PospischilM: same parameter names, S/cm2.
  pinf = 1/(1 + exp(-(v + 35)/10))
  ptau = tau_max/(3.3 exp((v + 35)/20) + exp(-(v + 35)/20))/tadj,
  tadj = q10^((celsius - temp_ref)/10)
  ik = g_k p (v - ek)
The reversal potential is the section's ek (jaxdend attribute e_k).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_pm
    USEION k READ ek WRITE ik
    RANGE g_k, tau_max, temp_ref, q10
    RANGE pinf, ptau
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_k = 7e-5 (S/cm2)
    tau_max = 1000 (ms)
    temp_ref = 36 (degC)
    q10 = 2.3 (1)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ek (mV)
    ik (mA/cm2)
    pinf (1)
    ptau (ms)
}

STATE { p }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = g_k*p*(v - ek)
}

INITIAL {
    rates(v)
    p = pinf
}

DERIVATIVE states {
    rates(v)
    p' = (pinf - p)/ptau
}

UNITSOFF
PROCEDURE rates(v (mV)) {
    LOCAL tadj
    tadj = q10^((celsius - temp_ref)/10)
    pinf = 1/(1 + exp(-(v + 35)/10))
    ptau = tau_max/(3.3*exp((v + 35)/20) + exp(-(v + 35)/20))/tadj
}
UNITSON
