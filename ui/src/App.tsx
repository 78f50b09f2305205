import { LocationProvider, Route, Router, useLocation } from "preact-iso";
import { KeyDialog } from "./components/KeyDialog";
import { usePageTitle } from "./hooks/usePageTitle";
import { BASE, paths } from "./paths";
import { AskView } from "./views/Ask";
import { BenchmarksView } from "./views/Benchmarks";
import { CompareView } from "./views/Compare";
import { TraceView } from "./views/Trace";

const NAV = [
  { href: paths.ask(), label: "Ask", match: (p: string) => p === `${BASE}/` || p === BASE },
  { href: paths.compare(), label: "Compare", match: (p: string) => p.startsWith(paths.compare()) },
  { href: paths.benchmarks(), label: "Benchmarks", match: (p: string) => p.startsWith(paths.benchmarks()) },
  { href: paths.trace(), label: "Trace", match: (p: string) => p.startsWith(paths.trace()) },
];

function Navigation() {
  const { path } = useLocation();
  return (
    <nav aria-label="Views">
      <ul>
        {NAV.map((item) => (
          <li key={item.href}>
            <a href={item.href} aria-current={item.match(path) ? "page" : undefined}>
              {item.label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function NotFound() {
  usePageTitle("Not found");
  return (
    <>
      <h1>Nothing here</h1>
      <p>
        This address is not a view of the app. Start from <a href={paths.ask()}>Ask</a>.
      </p>
    </>
  );
}

export function App() {
  return (
    <LocationProvider scope={BASE}>
      <KeyDialog />
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={paths.ask()}>
          RLM <span>recursive language model</span>
        </a>
        <Navigation />
      </header>
      <main id="main" tabIndex={-1}>
        <Router>
          <Route path={`${BASE}/`} component={AskView} />
          <Route path={`${BASE}/compare`} component={CompareView} />
          <Route path={`${BASE}/benchmarks/:batchId?`} component={BenchmarksView} />
          <Route path={`${BASE}/trace/:id?`} component={TraceView} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </LocationProvider>
  );
}
