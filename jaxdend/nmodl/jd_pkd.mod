TITLE jd_pkd: Pospischil et al. 2008 delayed-rectifier potassium current (Traub kinetics)

COMMENT
Written for the jaxdend test suite from the published equations (Pospischil et al. 2008).
Mirrors jaxdend.channels.PospischilKd: same parameter names, S/cm2.
  v2 = v - vt
  an = 0.032 (15 - v2)/(exp((15 - v2)/5) - 1)    bn = 0.5 exp((10 - v2)/40)
  tau = 1/(tadj (a + b)), tadj = q10^((celsius - temp_ref)/10)
  ik = g_k n^4 (v - ek)
The reversal potential is the section's ek (jaxdend attribute e_k).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_pkd
    USEION k READ ek WRITE ik
    RANGE g_k, vt, temp_ref, q10
    RANGE ninf, ntau
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_k = 0.005 (S/cm2)
    vt = -55 (mV)
    temp_ref = 36 (degC)
    q10 = 3 (1)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ek (mV)
    ik (mA/cm2)
    ninf (1)
    ntau (ms)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ik = g_k*n*n*n*n*(v - ek)
}

INITIAL {
    rates(v)
    n = ninf
}

DERIVATIVE states {
    rates(v)
    n' = (ninf - n)/ntau
}

UNITSOFF
PROCEDURE rates(v (mV)) {
    LOCAL a, b, v2, tadj
    tadj = q10^((celsius - temp_ref)/10)
    v2 = v - vt
    a = 0.032*vtrap(15 - v2, 5)
    b = 0.5*exp((10 - v2)/40)
    ntau = 1/(tadj*(a + b))
    ninf = a/(a + b)
}

FUNCTION vtrap(x, y) {
    if (fabs(x/y) < 1e-6) {
        vtrap = y*(1 - x/y/2)
    } else {
        vtrap = x/(exp(x/y) - 1)
    }
}
UNITSON
