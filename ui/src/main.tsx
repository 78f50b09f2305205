import "highlight.js/styles/a11y-light.css";
import { render } from "preact";
import { adoptKeyFromUrl } from "./api";
import { App } from "./App";
import "./styles.css";

adoptKeyFromUrl();
render(<App />, document.getElementById("app") as HTMLElement);
