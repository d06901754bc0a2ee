TITLE jd_pna: Pospischil et al. 2008 fast sodium current (Traub kinetics)

COMMENT
Written for the jaxdend test suite from the published equations (Pospischil et al. 2008,
Biol Cybern 99:427). Mirrors jaxdend.channels.PospischilNa: same parameter names, S/cm2.
  v2 = v - vt
  am = 0.32 (13 - v2)/(exp((13 - v2)/4) - 1)    bm = 0.28 (v2 - 40)/(exp((v2 - 40)/5) - 1)
  ah = 0.128 exp((17 - v2)/18)                  bh = 4/(1 + exp((40 - v2)/5))
  tau = 1/(tadj (a + b)), tadj = q10^((celsius - temp_ref)/10)
  ina = g_na m^3 h (v - ena)
The reversal potential is the section's ena (jaxdend attribute e_na).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_pna
    USEION na READ ena WRITE ina
    RANGE g_na, vt, temp_ref, q10
    RANGE minf, hinf, mtau, htau
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_na = 0.05 (S/cm2)
    vt = -55 (mV)
    temp_ref = 36 (degC)
    q10 = 3 (1)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ena (mV)
    ina (mA/cm2)
    minf (1)
    hinf (1)
    mtau (ms)
    htau (ms)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ina = g_na*m*m*m*h*(v - ena)
}

INITIAL {
    rates(v)
    m = minf
    h = hinf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m)/mtau
    h' = (hinf - h)/htau
}

UNITSOFF
PROCEDURE rates(v (mV)) {
    LOCAL a, b, v2, tadj
    tadj = q10^((celsius - temp_ref)/10)
    v2 = v - vt
    a = 0.32*vtrap(13 - v2, 4)
    b = 0.28*vtrap(v2 - 40, 5)
    mtau = 1/(tadj*(a + b))
    minf = a/(a + b)
    a = 0.128*exp((17 - v2)/18)
    b = 4/(1 + exp((40 - v2)/5))
    htau = 1/(tadj*(a + b))
    hinf = a/(a + b)
}

FUNCTION vtrap(x, y) {
    if (fabs(x/y) < 1e-6) {
        vtrap = y*(1 - x/y/2)
    } else {
        vtrap = x/(exp(x/y) - 1)
    }
}
UNITSON
