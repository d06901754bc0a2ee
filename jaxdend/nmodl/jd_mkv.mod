TITLE jd_mkv: Mainen & Sejnowski 1996 potassium current (kv.mod semantics)

COMMENT
Written for the jaxdend test suite from the equations of Mainen & Sejnowski 1996 as used in
the widely distributed kv.mod (cnexp revision): mirrors jaxdend.channels.MainenKv with the
same parameter names, but the density g_k is in S/cm2 (1 pS/um2 = 1e-4 S/cm2).
  trap0(v, th, a, q) = a (v - th)/(1 - exp(-(v - th)/q))
  an = trap0(v, tha, ra, qa)        bn = trap0(-v, -tha, rb, qa)
  ninf = an/(an + bn)   ntau = 1/(tadj (an + bn)),   tadj = q10^((celsius - temp_ref)/10)
  ik = tadj g_k n (v - ek)          (conductance also scaled by tadj, as in kv.mod)
The jaxdend attribute g_celsius corresponds to NEURON's celsius here.
The reversal potential is the section's ek (jaxdend attribute e_k).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_mkv
    USEION k READ ek WRITE ik
    RANGE g_k, tha, qa, ra, rb, temp_ref, q10
    RANGE ninf, ntau, tadj
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_k = 5e-4 (S/cm2)
    tha = 25 (mV)
    qa = 9 (mV)
    ra = 0.02 (/ms)
    rb = 0.002 (/ms)
    temp_ref = 23 (degC)
    q10 = 2.3 (1)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ek (mV)
    ik (mA/cm2)
    ninf (1)
    ntau (ms)
    tadj (1)
}

STATE { n }

BREAKPOINT {
    SOLVE states METHOD cnexp
    tadj = q10^((celsius - temp_ref)/10 (degC))
    ik = tadj*g_k*n*(v - ek)
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
    LOCAL a, b
    tadj = q10^((celsius - temp_ref)/10)
    a = trap0(v, tha, ra, qa)
    b = trap0(-v, -tha, rb, qa)
    ntau = 1/(tadj*(a + b))
    ninf = a/(a + b)
}

FUNCTION trap0(v, th, a, q) {
    if (fabs((v - th)/q) < 1e-6) {
        trap0 = a*q*(1 + (v - th)/q/2)
    } else {
        trap0 = a*(v - th)/(1 - exp(-(v - th)/q))
    }
}
UNITSON
