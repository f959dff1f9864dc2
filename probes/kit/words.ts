// Status-page words shared by the kinds that log in to something (ldap, oidc): the verb of an
// incident they cause, and why a login was refused, in plain words, for each code they report in
// info.authCode (LDAP results, Active Directory reasons, OAuth errors; see AUTH_CODE_LABEL). A
// code missing here reads as "Login refused" alone. Each code has its five languages together, so
// a translator reviews them side by side.
import type { KindWords, Language } from './kind.js';

const REFUSALS: Readonly<Record<string, Readonly<Record<Language, string>>>> = {
  // Active Directory's reasons for a refused bind, and LDAP results that refuse a login.
  account_locked: { en: 'account locked', sv: 'kontot är låst', da: 'kontoen er låst', nb: 'kontoen er låst', fi: 'tili on lukittu' },
  account_disabled: {
    en: 'account disabled',
    sv: 'kontot är inaktiverat',
    da: 'kontoen er deaktiveret',
    nb: 'kontoen er deaktivert',
    fi: 'tili on poistettu käytöstä',
  },
  account_expired: { en: 'account expired', sv: 'kontot har gått ut', da: 'kontoen er udløbet', nb: 'kontoen er utløpt', fi: 'tili on vanhentunut' },
  password_expired: {
    en: 'password expired',
    sv: 'lösenordet har gått ut',
    da: 'adgangskoden er udløbet',
    nb: 'passordet er utløpt',
    fi: 'salasana on vanhentunut',
  },
  must_change_password: {
    en: 'password must be changed',
    sv: 'lösenordet måste bytas',
    da: 'adgangskoden skal skiftes',
    nb: 'passordet må byttes',
    fi: 'salasana on vaihdettava',
  },
  invalid_credentials: {
    en: 'wrong user name or password',
    sv: 'fel användarnamn eller lösenord',
    da: 'forkert brugernavn eller adgangskode',
    nb: 'feil brukernavn eller passord',
    fi: 'väärä käyttäjätunnus tai salasana',
  },
  user_not_found: { en: 'unknown user', sv: 'okänd användare', da: 'ukendt bruger', nb: 'ukjent bruker', fi: 'tuntematon käyttäjä' },
  time_restriction: {
    en: 'not allowed at this time of day',
    sv: 'inte tillåtet vid den här tiden',
    da: 'ikke tilladt på dette tidspunkt',
    nb: 'ikke tillatt på dette tidspunktet',
    fi: 'ei sallittu tähän aikaan',
  },
  workstation_restriction: {
    en: 'not allowed from this computer',
    sv: 'inte tillåtet från den här datorn',
    da: 'ikke tilladt fra denne computer',
    nb: 'ikke tillatt fra denne datamaskinen',
    fi: 'ei sallittu tältä tietokoneelta',
  },
  insufficient_access: { en: 'no access', sv: 'saknar behörighet', da: 'mangler adgang', nb: 'mangler tilgang', fi: 'ei käyttöoikeutta' },
  inappropriate_auth: {
    en: 'login method not allowed',
    sv: 'inloggningssättet är inte tillåtet',
    da: 'login-metoden er ikke tilladt',
    nb: 'innloggingsmetoden er ikke tillatt',
    fi: 'kirjautumistapa ei ole sallittu',
  },
  strong_auth_required: {
    en: 'stronger login required',
    sv: 'starkare inloggning krävs',
    da: 'stærkere login kræves',
    nb: 'sterkere innlogging kreves',
    fi: 'vahvempi tunnistautuminen vaaditaan',
  },
  confidentiality_required: {
    en: 'encrypted connection required',
    sv: 'krypterad anslutning krävs',
    da: 'krypteret forbindelse kræves',
    nb: 'kryptert tilkobling kreves',
    fi: 'salattu yhteys vaaditaan',
  },
  auth_method_not_supported: {
    en: 'login method not supported',
    sv: 'inloggningssättet stöds inte',
    da: 'login-metoden understøttes ikke',
    nb: 'innloggingsmetoden støttes ikke',
    fi: 'kirjautumistapaa ei tueta',
  },
  // OAuth errors (RFC 6749 5.2 and 4.1.2.1, RFC 6750 3.1).
  invalid_request: {
    en: 'request not accepted',
    sv: 'begäran godtas inte',
    da: 'forespørgslen accepteres ikke',
    nb: 'forespørselen godtas ikke',
    fi: 'pyyntöä ei hyväksytä',
  },
  invalid_client: {
    en: 'application credentials not accepted',
    sv: 'applikationens inloggningsuppgifter godtas inte',
    da: 'applikationens loginoplysninger accepteres ikke',
    nb: 'applikasjonens innloggingsopplysninger godtas ikke',
    fi: 'sovelluksen tunnistetietoja ei hyväksytä',
  },
  invalid_grant: {
    en: 'login details not accepted',
    sv: 'inloggningsuppgifterna godtas inte',
    da: 'loginoplysningerne accepteres ikke',
    nb: 'innloggingsopplysningene godtas ikke',
    fi: 'kirjautumistietoja ei hyväksytä',
  },
  unauthorized_client: {
    en: 'application not allowed to log in this way',
    sv: 'applikationen får inte logga in på det här sättet',
    da: 'applikationen må ikke logge ind på denne måde',
    nb: 'applikasjonen har ikke lov til å logge inn på denne måten',
    fi: 'sovellus ei saa kirjautua tällä tavalla',
  },
  unsupported_grant_type: {
    en: 'login type not supported',
    sv: 'inloggningstypen stöds inte',
    da: 'login-typen understøttes ikke',
    nb: 'innloggingstypen støttes ikke',
    fi: 'kirjautumistyyppiä ei tueta',
  },
  invalid_scope: {
    en: 'requested access not allowed',
    sv: 'begärd behörighet tillåts inte',
    da: 'den ønskede adgang tillades ikke',
    nb: 'ønsket tilgang tillates ikke',
    fi: 'pyydettyä käyttöoikeutta ei sallita',
  },
  access_denied: { en: 'access denied', sv: 'åtkomst nekad', da: 'adgang nægtet', nb: 'tilgang nektet', fi: 'pääsy evätty' },
  server_error: {
    en: 'error in the login service',
    sv: 'fel i inloggningstjänsten',
    da: 'fejl i login-tjenesten',
    nb: 'feil i innloggingstjenesten',
    fi: 'virhe kirjautumispalvelussa',
  },
  temporarily_unavailable: {
    en: 'login service temporarily unavailable',
    sv: 'inloggningstjänsten är tillfälligt otillgänglig',
    da: 'login-tjenesten er midlertidigt utilgængelig',
    nb: 'innloggingstjenesten er midlertidig utilgjengelig',
    fi: 'kirjautumispalvelu ei ole tilapäisesti käytettävissä',
  },
  invalid_token: {
    en: 'access token not accepted',
    sv: 'åtkomsttoken godtas inte',
    da: 'adgangstoken accepteres ikke',
    nb: 'tilgangstoken godtas ikke',
    fi: 'käyttöoikeustunnistetta ei hyväksytä',
  },
  insufficient_scope: {
    en: 'token lacks the needed access',
    sv: 'token saknar nödvändig behörighet',
    da: 'token mangler den nødvendige adgang',
    nb: 'token mangler nødvendig tilgang',
    fi: 'tunnisteelta puuttuu tarvittava käyttöoikeus',
  },
};

/** The refusal codes in one language. */
function refusalsIn(language: Language): Record<string, string> {
  return Object.fromEntries(Object.entries(REFUSALS).map(([code, words]) => [code, words[language]]));
}

/** The words of a kind that logs in: "<title> not accepting logins since 03:02", and its refusal codes. */
export const LOGIN_WORDS: Readonly<Record<Language, KindWords>> = {
  en: { notAnswering: 'not accepting logins', refusals: refusalsIn('en') },
  sv: { notAnswering: 'tar inte emot inloggningar', refusals: refusalsIn('sv') },
  da: { notAnswering: 'tager ikke imod login', refusals: refusalsIn('da') },
  nb: { notAnswering: 'tar ikke imot innlogging', refusals: refusalsIn('nb') },
  fi: { notAnswering: 'ei ota vastaan kirjautumisia', refusals: refusalsIn('fi') },
};
